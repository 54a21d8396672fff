"""State machines of referrals, appointments, reports, téléexpertise (no Flask here)."""
