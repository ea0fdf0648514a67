"""Self-managed webhook certificates: the Secret's contents (material), the caBundle of the webhook
configurations (webhooks), the leader's rotation loop (rotation) and every replica's file mirror (files)."""
