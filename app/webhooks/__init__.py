"""What PayBridge does with what the PSP tells it: webhook events and retrieved sessions."""
