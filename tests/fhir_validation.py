"""An independent check of what /fhir/ serves: each resource is parsed by fhir.resources (pinned in the dev
extras), whose pydantic models enforce FHIR's structure: element names, cardinalities, datatypes and their
regexes, required elements, and the choice types.

Which release: fhir.resources 8.x models R5 by default and ships R4B (4.3.0) in `fhir.resources.R4B`; no
maintained release models R4 (4.0.1) itself (the 6.x line did, on pydantic 1, which the hub does not install).
R4B changed none of the resources the hub serves from R4 except additions (R4B's
`CapabilityStatement.implementation`…) that the hub does not use, so an R4B parse validates the R4 shape."""

from fhir.resources.R4B import get_fhir_model_class


def validate(body: dict):
    """The parsed resource (a Bundle's entries are parsed with it); raises pydantic's ValidationError if the JSON
    is not a valid FHIR resource of its type."""
    model = get_fhir_model_class(body["resourceType"])
    return model.model_validate(body)
