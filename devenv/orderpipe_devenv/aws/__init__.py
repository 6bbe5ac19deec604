"""AWS on loopback: moto (DynamoDB, Secrets Manager, ...), ElasticMQ (SQS), and the pipeline's
queues and tables created on them the way the stack defines them."""
