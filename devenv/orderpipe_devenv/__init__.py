"""orderpipe's local environment, for developers: the whole pipeline on one machine.

Process utilities (`processes`), downloads (`cache`, `maven_jars`), a real Cassandra (`cassandra`),
the AWS emulators (`aws`: moto, ElasticMQ, the pipeline's queues and tables), the local runtime
(`runtime`: API Gateway and SQS event-source emulators in front of the real handlers), the Lambda
event shapes they use (`lambda_events`), and the `orderpipe run` / `orderpipe cassandra` commands.
"""
