//! CI, deploy, health and notification adapters: local commands, HTTP, Slack.
