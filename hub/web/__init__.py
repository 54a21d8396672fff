"""Server-rendered French pages. Each module holds one blueprint; every view states its access rule."""


def blueprints():
    from hub.web import admin, auth, home, me, patients, professionals

    return [auth.bp, home.bp, patients.bp, professionals.bp, admin.bp, me.bp]
