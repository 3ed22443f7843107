#!/bin/sh
# Boot 1, in the initramfs (chrooted into the root): the shared remote (a bare repository on the root
# disk), host A's clone (the clone the test drives) and host B's configuration repository /etc/config.
set -eu
git init -q --bare -b dev /srv/remote.git
git init -q -b dev /srv/seed
cd /srv/seed
cp /etc/bgvm/gitops/checks.toml checks.toml
echo ok >build.txt
echo ok >boot.txt
echo "hello from the seed" >motd.txt
git add -A
git -c user.name=seed -c user.email=seed@bgvm.test commit -qm "seed configuration"
git push -q /srv/remote.git dev
git clone -q -b dev /srv/remote.git /srv/host-a
git -C /srv/host-a config user.name "host A"
git -C /srv/host-a config user.email a@bgvm.test
git clone -q -b dev /srv/remote.git /etc/config
mkdir -p /var/lib/bgvm/gitops
git -C /etc/config rev-parse HEAD >/var/lib/bgvm/gitops/made
