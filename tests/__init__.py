"""The test suite. The application reads its zone from the configuration; tests name the territory's here."""

ZONE = "Europe/Paris"
