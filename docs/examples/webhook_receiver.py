"""A Standard Webhooks receiver: WEBHOOK_SECRET=whsec_... PORT=8000 python webhook_receiver.py"""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

hook = Webhook(os.environ["WEBHOOK_SECRET"])  # the endpoint's secret, from the environment


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # the raw bytes
        try:  # the signature covers webhook-id, webhook-timestamp and the body
            events = hook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            return self.send_error(401)
        for event in events if isinstance(events, list) else [events]:  # a batch is an array
            print(event["kind"], event["task_id"], event["seq"], event["id"], flush=True)
        self.send_response(204)  # any 2xx: delivered; anything else is retried
        self.end_headers()


server = HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
