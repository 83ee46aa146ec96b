# Baton on AWS: build, package, deploy, and the local emulators.
#   make test        every test (scripts/test.sh: workspace, emulators, static checks, conformance)
#   make test-integ  the AWS adapter tests against LocalStack + DynamoDB Local
#   make validate    sam validate --lint, cfn-lint, asl-validator
#   make local-stack the stack's function binaries on this machine, as Lambda runs them (baton dev release)
#   make package     arm64 Lambda binaries via cargo-lambda (slow: ~7 min + 1.5 min/function)
#   make deploy      sam build + sam deploy --guided (needs AWS credentials)

SHELL := /bin/bash
TEMPLATE := infra/template.yaml
SAMCONFIG := infra/samconfig.toml
FUNCTIONS := load-catalog trigger-build poll-build deploy-wave check-health notify record-metrics github-webhook

.PHONY: build package deploy local-up local-down local-stack test test-integ validate

# The Lambda builds' Rust flags (non-PIE, target CPU), for package and deploy only: a host build
# must not get them (see the file).
include scripts/lambda-build.env
package deploy: export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS := $(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS)

build:
	cargo build --workspace

package:
	cargo lambda build --release --arm64 $(foreach f,$(FUNCTIONS),-p baton-$(f))

deploy:
	sam build --template-file $(TEMPLATE) --config-file $(abspath $(SAMCONFIG)) --beta-features
	sam deploy --guided --template-file .aws-sam/build/template.yaml --config-file $(abspath $(SAMCONFIG))

local-up:
	scripts/emulators.sh start

local-down:
	scripts/emulators.sh stop

# Releases hello-web (succeeds) and flaky-api (rolls back); exits 1 if IAM denies an operation.
local-stack:
	scripts/local-stack.sh

test:
	scripts/test.sh

# Starts the emulators unless they already run, and stops them afterwards only if it started them.
test-integ:
	@if scripts/emulators.sh status >/dev/null; then started=0; else started=1; scripts/emulators.sh start; fi; \
	eval "$$(scripts/emulators.sh env)"; \
	cargo test --workspace --test aws --test local_stack -- emulator::; status=$$?; \
	if (( started )); then scripts/emulators.sh stop; fi; \
	exit $$status

validate:
	scripts/static-checks.sh
