"""The service facade's concerns, one module each (see ``meshgov.service``)."""
