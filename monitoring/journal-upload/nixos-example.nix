# Forwarding bootguard's journal entries with systemd's own uploader (no log shipper of bootguard's).
# On every host:
{
  services.journald.upload = {
    enable = true;
    settings.Upload = {
      URL = "https://journal.example.org:19532";
      ServerKeyFile = "/run/keys/journal-upload.key";
      ServerCertificateFile = "/run/keys/journal-upload.crt";
      TrustedCertificateFile = "/run/keys/fleet-ca.crt";
    };
  };
}
# On the log server:
# {
#   services.journald.remote = {
#     enable = true;
#     settings.Remote.SplitMode = "host";
#   };
# }
