"""Test support shared by every test: where the infrastructure is, services as processes, Kafka reads."""
