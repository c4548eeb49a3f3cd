"""The demo storefront: a client app of PayBridge that happens to live in the same process.

It keeps its own tables (products, customers, orders), creates payments through the payment
service as the demo merchant, and learns outcomes only from PayBridge's signed notifications.
"""
