"""The request bodies of a P7 teleconsultation, shared by the locustfile (which imports nothing from the hub: locust
puts this folder on its path) and bench/p7/server_cpu.py."""

WRITTEN = {"acts": "Téléconsultation cardiologique, ECG lu à distance.", "conclusion": "Pas de décompensation."}
CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}
CHECK_IN = {"identity_method": "document", "patient_location": "Domicile", "callback_phone": "0612345678"}
