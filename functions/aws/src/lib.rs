//! AWS adapters: DynamoDB store and catalog, Step Functions, EventBridge, Scheduler.
