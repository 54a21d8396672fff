"""Server-rendered French pages. Each module holds one blueprint; every view states its access rule."""


def blueprints():
    from hub.web import auth, home

    return [auth.bp, home.bp]
