"""The mailbox service: deliveries into the SQL store (and a receiver's own Kafka topic, when it has one)."""
