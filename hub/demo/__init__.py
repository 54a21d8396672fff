"""The demo territory (`flask hub demo`): a CPTS shaped like VIVEVAL with its people (territory), the
static communes and names it draws from (data), and its schedule of sessions booked through the real
workflows (planning). It sits above the workflows and nothing in the hub imports it but the CLI.
"""

from hub.demo.planning import load_demo_schedule
from hub.demo.territory import format_summary, load_demo

__all__ = ["format_summary", "load_demo", "load_demo_schedule"]
