"""Clinical documents, below the workflows and the connectors: what a document says (clinical), how a patient,
a professional and the CPTS are named in it (identity), its renderings (pdf, cda), the content-addressed
store their bytes live in (store), and freezing a signed document into that store (freezing).

Imports the models and small Flask-free helpers (hub.identifiers, hub.formatting, hub.errors) only: never
hub.services, the workflows, the connectors or Flask (an import-linter contract in setup.cfg)."""
