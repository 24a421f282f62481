#!/bin/sh
# The backbone's Kafka topics, as src/edi/schemas/topics.py defines them (tests/deploy checks that they agree).
# Idempotent: an existing topic is left as it is (partitions are never changed here; see docs/runbook.md).
# The services create missing topics themselves at start-up (Bus.ensure_topics); run this first where they may
# not create topics, or to give the topics the cluster's replication factor before the first start.
#
#   KAFKA_BOOTSTRAP_SERVERS  where the cluster is (default localhost:9092)
#   REPLICATION_FACTOR       replicas per topic (default 3; 1 on a single broker)
#   EDI_BUS_NAMESPACE        the installation's topic prefix, as the services' EDI_BUS_NAMESPACE (default none)
#   KAFKA_TOPICS             the kafka-topics tool (default kafka-topics.sh on the PATH)
set -eu

bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}"
replicas="${REPLICATION_FACTOR:-3}"
prefix="${EDI_BUS_NAMESPACE:+${EDI_BUS_NAMESPACE}.}"
kafka_topics="${KAFKA_TOPICS:-kafka-topics.sh}"

create() {
  topic="$1"; partitions="$2"; shift 2
  "$kafka_topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$prefix$topic" \
    --partitions "$partitions" --replication-factor "$replicas" "$@"
}

# The message flow: a week of records.
create edi.inbound 12 --config cleanup.policy=delete --config retention.ms=604800000
create edi.accepted 12 --config cleanup.policy=delete --config retention.ms=604800000
create edi.deliveries 12 --config cleanup.policy=delete --config retention.ms=604800000
create edi.rejected 6 --config cleanup.policy=delete --config retention.ms=604800000
create edi.status 12 --config cleanup.policy=delete --config retention.ms=604800000
# The capability registry's changes: compacted, the newest record per entity kept forever.
create edi.registry 1 --config cleanup.policy=compact
# One dead-letter topic per consuming service, kept 30 days for an operator.
create edi.dlq.validator 1 --config cleanup.policy=delete --config retention.ms=2592000000
create edi.dlq.router 1 --config cleanup.policy=delete --config retention.ms=2592000000
create edi.dlq.mailbox 1 --config cleanup.policy=delete --config retention.ms=2592000000
create edi.dlq.status 1 --config cleanup.policy=delete --config retention.ms=2592000000
create edi.dlq.receipts 1 --config cleanup.policy=delete --config retention.ms=2592000000
