"""After-sales: refund and return requests, arbitration by ops, care cases."""
