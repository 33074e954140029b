#!/bin/sh
# Create a public room over the REST API and print its id.
#
#   examples/create_room.sh TOKEN
#
# TOKEN is the owner's bearer token (`syncplayctl token create ...`); SYNCPLAYD_URL
# names another daemon (default http://127.0.0.1:8750). The room plays the demo video,
# which the daemon serves in demo mode (`make run`): its content id is a path relative
# to the watch page. Behind your media server, the content id is what
# web.media_url_template turns into a stream URL (docs/deployment.md).
set -eu

token=${1:?usage: examples/create_room.sh TOKEN}
url=${SYNCPLAYD_URL:-http://127.0.0.1:8750}

if ! response=$(curl -sS --fail-with-body \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name": "Friday film", "content_type": "url", "content_id": "demo/demo.webm", "is_public": true}' \
    "$url/api/v1/syncplay/rooms"); then
    echo "create_room.sh: the daemon refused: $response" >&2
    exit 1
fi
printf '%s\n' "$response" | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["id"])'
