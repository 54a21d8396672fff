"""The six rituals of a kiné's télésoin session (seed 000, « 6 rituels de séance »): the session's checklist, one
definition for the form, the API, the completion rule and the report.

A session's rituals are stored on its appointment (`Appointment.rituals`, JSON) under the field names below;
`requires` says, for each ritual, which fields must hold something and how a refusal names the one missing."""

from dataclasses import dataclass

MAX_PROMS = 2  # « 1-2 PROMs ciblés »


@dataclass(frozen=True)
class Ritual:
    label: str
    hint: str  # what the ritual covers, in the guide's words
    requires: tuple[tuple[str, str], ...]  # (field, what is missing when it is empty)
    optional: tuple[str, ...] = ()  # fields noted with the ritual, not required


RITUALS = (
    Ritual(
        "Brief d'ouverture",
        "agenda, durée et objectifs de la séance ; consentement spécifique au télésoin",
        (
            ("opening_brief", "le brief d'ouverture (agenda, durée, objectifs)"),
            ("telesoin_consent", "le consentement spécifique au télésoin"),
        ),
    ),
    Ritual(
        "Sécurité et confidentialité",
        "pièce calme, champ de la caméra sur le mouvement, éclairage, tiers absent",
        (("safety_privacy", "la sécurité et la confidentialité (pièce, caméra, éclairage, tiers absent)"),),
    ),
    Ritual(
        "Mesure initiale",
        f"1 à {MAX_PROMS} PROMs ciblés, nom et valeur ; critères d'arrêt",
        (
            ("proms", "la mesure initiale : un ou deux PROMs (nom et valeur)"),
            ("stop_criteria", "les critères d'arrêt"),
        ),
    ),
    Ritual(
        "Démonstration et reformulation",
        "l'exercice montré, puis redit ou refait par le patient (teach-back)",
        (("teach_back", "la démonstration et la reformulation par le patient (teach-back)"),),
    ),
    Ritual(
        "Feedback structuré",
        "répétitions, charge, douleur acceptable ou RPE, suivi des objectifs",
        (("structured_feedback", "le feedback structuré (répétitions, charge, douleur ou RPE, objectifs)"),),
        ("feedback_notes",),
    ),
    Ritual(
        "Clôture",
        "récapitulatif, plan avant J+7, message asynchrone de renfort",
        (
            ("plan", "le plan avant J+7"),
            ("reinforcement_message", "le message asynchrone de renfort"),
        ),
    ),
)

# What the kiné ticks or writes, as the form and the report word it.
RITUAL_FIELD_LABELS = {
    "opening_brief": "Brief d'ouverture fait : agenda, durée et objectifs annoncés",
    "telesoin_consent": "Le patient a donné son consentement spécifique au télésoin pour cette séance",
    "safety_privacy": "Pièce calme, caméra cadrée sur le mouvement, éclairage suffisant, aucun tiers non souhaité",
    "proms": "PROMs de la mesure initiale",
    "stop_criteria": "Critères d'arrêt de la séance",
    "teach_back": "Exercice démontré, puis reformulé ou refait par le patient",
    "structured_feedback": "Feedback donné : répétitions, charge, douleur acceptable ou RPE, objectifs",
    "feedback_notes": "Notes du feedback",
    "plan": "Plan jusqu'à la prochaine séance (avant J+7)",
    "reinforcement_message": "Message asynchrone de renfort envoyé ou programmé",
}
