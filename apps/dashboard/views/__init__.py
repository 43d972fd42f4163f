"""The portal's server-rendered pages, one module per area."""
