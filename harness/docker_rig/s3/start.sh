#!/bin/sh
# A throwaway certificate, nginx (it daemonizes) for TLS on 443, then moto in the foreground.
set -eu
mkdir -p /run/s3-tls
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=s3" \
  -keyout /run/s3-tls/key.pem -out /run/s3-tls/cert.pem 2>/dev/null
nginx -c /etc/nginx/s3-tls.conf
exec /opt/moto/bin/moto_server -H 0.0.0.0 -p 5000
