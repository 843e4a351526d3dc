#!/usr/bin/env bash
# The reliability report: runs the scenarios of tests/reliability/ (kill -9 of consume and
# produce, S3 outage, Kafka broker restart, slow S3, group churn, poison messages) against
# the real services and prints one row per scenario: messages in the topic, objects in
# the bucket, lost, extra keys, wrong bytes, time to recover, peak memory.
#
# Usage: scripts/reliability.sh [--short]
#   default  the full variant (more messages, 50 kill rounds; about 12 minutes)
#   --short  the variant the test command runs (20 kill rounds)
# The table is also saved to target/reliability/report.txt.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  "") export EGX_RELIABILITY=full ;;
  --short) export EGX_RELIABILITY=short ;;
  *) echo "usage: $0 [--short]" >&2; exit 2 ;;
esac
exec "$repo/scripts/test.sh" --test main reliability::
