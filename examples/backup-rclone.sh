#!/bin/sh
# Back up a directory into a Garage bucket with rclone: the bucket's `current/` mirrors the
# directory, and every file changed or deleted since the last run is kept under
# `history/<date>/` (delete old history with a lifecycle rule or `rclone purge`).
#
#   AWS_ACCESS_KEY_ID=GK... AWS_SECRET_ACCESS_KEY=... ./backup-rclone.sh /srv/photos photos-backup
#
# GARAGE_S3_ENDPOINT (default http://127.0.0.1:3900) and GARAGE_S3_REGION (default garage)
# say where the node is. The bucket must exist and the key must be allowed to write to it
# (garage bucket create photos-backup; garage bucket allow --read --write photos-backup --key ...).
set -eu

src=${1:?usage: backup-rclone.sh <directory> <bucket>}
bucket=${2:?usage: backup-rclone.sh <directory> <bucket>}
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID}" "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"

# An rclone remote named `garage`, from the environment only (no rclone.conf needed).
export RCLONE_CONFIG_GARAGE_TYPE=s3
export RCLONE_CONFIG_GARAGE_PROVIDER=Other
export RCLONE_CONFIG_GARAGE_ENV_AUTH=false
export RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_GARAGE_ENDPOINT="${GARAGE_S3_ENDPOINT:-http://127.0.0.1:3900}"
export RCLONE_CONFIG_GARAGE_REGION="${GARAGE_S3_REGION:-garage}"
export RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
rclone sync "$src" "garage:$bucket/current" --backup-dir "garage:$bucket/history/$stamp" --checksum
# Fails (exit 1) if anything in the directory is not in the bucket, byte for byte.
rclone check "$src" "garage:$bucket/current" --one-way --checksum
echo "backed up $src to $bucket/current (replaced files in $bucket/history/$stamp)"
