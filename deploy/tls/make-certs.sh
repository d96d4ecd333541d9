#!/bin/sh
# make-certs.sh DIR SLAVE-NAME [SLAVE-NAME...]
#
# Writes the PEM files georep's mutual TLS needs into DIR, with openssl only:
#   ca.crt, ca.key          a CA (reused when DIR already holds one); keep ca.key off both hosts
#   slave.crt, slave.key    the slave's server certificate, valid for every SLAVE-NAME: the DNS names or
#                           IP addresses the master dials (the host of its `slave` key)
#   master.crt, master.key  a master's client certificate (CN from $MASTER_NAME, default georep-master)
#   status.crt, status.key  with $STATUS_NAMES (space-separated DNS names / IP addresses of the masters'
#                           status-listen): the status service's server certificate (status-tls-cert)
#   ctl.crt, ctl.key        with $STATUS_NAMES: georepctl's client certificate (CN from $CTL_NAME,
#                           default georepctl; list it in status-allowed-clients)
# Certificates are valid for $DAYS days (default 825). Then copy ca.crt + slave.* to the slave and
# ca.crt + master.* to the master, as /etc/georep/tls/ (keys mode 0600, owned by root).
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 DIR SLAVE-NAME [SLAVE-NAME...]   (e.g. $0 ./tls replica.example.net 192.0.2.10)" >&2
	exit 2
fi
dir=$1
shift
days=${DAYS:-825}
master_name=${MASTER_NAME:-georep-master}
umask 077
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; then
	newkey "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=georep CA" -days $((days * 2)) -out "$dir/ca.crt" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# sign NAME SUBJECT-CN EXTENDED-KEY-USAGE [SAN]
sign() {
	newkey "$dir/$1.key"
	openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$3"
		if [ -n "${4:-}" ]; then echo "subjectAltName=$4"; fi
	} >"$tmp/$1.ext"
	openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/$1.ext" -out "$dir/$1.crt" 2>/dev/null
}

# sans NAME... prints the subjectAltName of DNS names and IP addresses.
sans() {
	san=""
	for name in "$@"; do
		case $name in
		*[!0-9.]* | "") case $name in *:*) entry="IP:$name" ;; *) entry="DNS:$name" ;; esac ;;
		*) entry="IP:$name" ;;
		esac
		san="${san:+$san,}$entry"
	done
	echo "$san"
}

san=$(sans "$@")
sign slave "$1" serverAuth "$san"
sign master "$master_name" clientAuth
chmod 0644 "$dir/ca.crt" "$dir/slave.crt" "$dir/master.crt"
echo "wrote $dir/ca.crt, slave.crt/.key ($san), master.crt/.key (CN=$master_name)"
if [ -n "${STATUS_NAMES:-}" ]; then
	# shellcheck disable=SC2086 # a list of names
	status_san=$(sans $STATUS_NAMES)
	# shellcheck disable=SC2086
	set -- $STATUS_NAMES
	ctl_name=${CTL_NAME:-georepctl}
	sign status "$1" serverAuth "$status_san"
	sign ctl "$ctl_name" clientAuth
	chmod 0644 "$dir/status.crt" "$dir/ctl.crt"
	echo "wrote $dir/status.crt/.key ($status_san), ctl.crt/.key (CN=$ctl_name)"
fi
