"""Server-rendered French pages. Each module holds one blueprint; every view states its access rule."""


def blueprints():
    from hub.web import (
        admin,
        agenda,
        auth,
        calendar,
        connectors_admin,
        fees,
        home,
        me,
        outbox,
        pathways,
        patients,
        planning,
        professionals,
        referrals,
        reports,
        resources,
        sessions,
        survey,
        teleexpertise,
        visits,
    )

    return [
        auth.bp,
        home.bp,
        patients.bp,
        professionals.bp,
        admin.bp,
        me.bp,
        calendar.bp,
        planning.bp,
        resources.bp,
        visits.bp,
        sessions.bp,
        agenda.bp,
        fees.bp,
        pathways.bp,
        referrals.bp,
        reports.bp,
        outbox.bp,
        connectors_admin.bp,
        teleexpertise.bp,
        survey.bp,
    ]
