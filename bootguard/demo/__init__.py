"""`bootguard demo`: the whole story on a sandbox tree, with a model of systemd-boot between boots
(simloader.py). Above the CLI, which it drives; nothing else imports it but tests."""
