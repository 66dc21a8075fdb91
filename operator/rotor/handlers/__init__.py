"""kopf handlers: thin, one module per kind. They feed the controller; they do no I/O of their own."""
