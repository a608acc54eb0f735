"""One module per screen; each screen composes its own TopBar, body and Footer."""
