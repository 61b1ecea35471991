"""Local emulator of the OpenAI, Anthropic and Gemini batch APIs (real HTTP on 127.0.0.1).

Faithful enough that the official SDKs, unmodified, run against it with strict response
validation; persistent, so `--emulate` jobs progress across processes; with seeded fault
injection for tests and dry runs.
"""

from llmbulk.emulator.engine import Emulator, EmulatorConfig, FaultPlan, HttpFault
from llmbulk.emulator.serve import EmulatorServer

__all__ = ["Emulator", "EmulatorConfig", "EmulatorServer", "FaultPlan", "HttpFault"]
