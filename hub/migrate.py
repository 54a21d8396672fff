"""Run Alembic from code (the CLI, the tests) on a given engine."""

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from hub.config import PROJECT_ROOT


def alembic_config(engine: Engine) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["engine"] = engine
    return config


def _run(engine: Engine, fn, *args, **kwargs) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        fn(config, *args, **kwargs)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def revision(engine: Engine, message: str, *, autogenerate: bool = True) -> None:
    _run(engine, command.revision, message=message, autogenerate=autogenerate)
