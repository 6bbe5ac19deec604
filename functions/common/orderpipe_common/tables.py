"""Key and attribute names of the DynamoDB tables, shared by the stack, the local runtime and the code."""

# Read cache (reader): one item per order, expired by DynamoDB TTL on CACHE_EXPIRY_ATTRIBUTE.
CACHE_PARTITION_KEY = "order_id"
CACHE_ORDER_ATTRIBUTE = "order"
CACHE_EXPIRY_ATTRIBUTE = "expires_at"

# Idempotency (ingest): Powertools' DynamoDBPersistenceLayer defaults.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_EXPIRY_ATTRIBUTE = "expiration"
