//! An embedded Amazon States Language executor: runs Step Functions definitions in-process.
