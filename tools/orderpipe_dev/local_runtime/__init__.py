"""The whole pipeline on one machine: real handlers behind an API Gateway emulator and an SQS
event-source emulator, on a real Cassandra node and moto server."""
