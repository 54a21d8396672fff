"""Time: recurrence, slots, bookings and conflicts, iCalendar, jobs (no Flask here)."""
