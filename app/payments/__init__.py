"""The payment core: statuses, the state machine and the services that create and move payments."""
