"""Azure emulator: one HTTPS origin serving Entra ID (and later ARM, Kubernetes, Marketplace).

Run it with ``python -m emulators.azure --port 0 --data-dir DIR``; drive it from tests with
:class:`emulators.azure.server.EmulatorProcess`; mint tokens in-process with
:class:`emulators.azure.keys.KeyStore`. Everything it persists lives under the data dir.
"""
