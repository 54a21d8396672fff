"""The patient's satisfaction survey (« /enquete/<token> »): the form's shape; which answers are required and
their range are the workflow's (workflows.surveys)."""

from hub.schemas.base import Bool, FormSchema, Int, Str, length


class SurveyForm(FormSchema):
    ease = Int()
    av_quality = Int()
    listened = Int()
    would_again = Bool()
    comment = Str(validate=length(1000))
