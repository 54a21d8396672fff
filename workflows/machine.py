"""State machines as tables: for each verb, the states it may start from and the state it leads to."""

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from hub.errors import InvalidTransition

State = TypeVar("State", bound=StrEnum)


class Machine(Generic[State]):
    def __init__(
        self, name: str, transitions: Mapping[str, tuple[frozenset[State], State]], labels: Mapping[State, str]
    ):
        self.name = name
        self.transitions = transitions
        self.labels = labels

    def target(self, verb: str, current: State) -> State:
        """The state `verb` leads to from `current`, or InvalidTransition with a French message."""
        sources, target = self.transitions[verb]
        if current not in sources:
            raise InvalidTransition(
                f"Action impossible : {self.name} est « {self.labels[current]} ».",
                current_state=current.value,
                action=verb,
            )
        return target

    def allows(self, verb: str, current: State) -> bool:
        return current in self.transitions[verb][0]

    def allowed_verbs(self, current: State) -> list[str]:
        return [verb for verb, (sources, _) in self.transitions.items() if current in sources]
