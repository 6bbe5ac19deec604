"""orderpipe's operator tools: the orders queue, its dead-letter queue, producers.

boto3 and rich only, so a plain `pip install` of this package works on an operator's machine
without the rest of the repository; the same code runs against the local runtime and a deployed
stack.
"""
