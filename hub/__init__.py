"""The CPTS hub. Importing this package stays cheap: Flask is only loaded by create_app()."""


def create_app(test_config=None):
    from hub.app import build_app

    return build_app(test_config)
