"""Who may do what: merchants and their settings (notify URL, signing secrets), API keys,
dashboard users, and the append-only audit log of what users did."""
