"""Components of an audit-x environment: one ComponentResource per concern."""
