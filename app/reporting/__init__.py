"""What the dashboard reads: the transactions table and its CSV export, the overview and its
charts, a payment's whole story, subscription lists. Queries only; nothing here changes a row."""
