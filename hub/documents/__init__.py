"""Clinical documents, below the workflows and the connectors: what a document says (clinical), its
renderings (pdf, cda), the content-addressed store their bytes live in (store), and how a patient, a
professional and the CPTS are named in it (identity). Imports the models only, never Flask or hub.services."""
