"""A tiny Flask app with a password-reset flow that sends mail over SMTP."""

from __future__ import annotations

import secrets
import smtplib
from email.message import EmailMessage

from flask import Flask, abort, request


def create_app(smtp_host: str, smtp_port: int) -> Flask:
    """The app; mail goes to ``smtp_host:smtp_port``."""
    app = Flask(__name__)
    passwords = {"alice@example.com": "old-password"}
    tokens: dict[str, tuple[str, str]] = {}  # token -> (email, one-time code)

    def send_reset(email: str, link: str, code: str) -> None:
        msg = EmailMessage()
        msg["From"] = "Example App <no-reply@app.example>"
        msg["To"] = email
        msg["Subject"] = "Reset your password"
        msg.set_content(f"Reset your password: {link}\nOr enter this code: {code}\n")
        msg.add_alternative(
            f'<p><a href="{link}">Reset your password</a></p><p>Or enter this code: <b>{code}</b></p>',
            subtype="html",
        )
        with smtplib.SMTP(smtp_host, smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)

    @app.post("/forgot")
    def forgot() -> tuple[str, int]:
        email = request.form.get("email", "").strip().lower()
        if email in passwords:  # unknown addresses get the same answer (no enumeration)
            token = secrets.token_urlsafe(16)
            code = f"{secrets.randbelow(10**6):06d}"
            tokens[token] = (email, code)
            try:
                send_reset(email, f"{request.host_url}reset/{token}", code)
            except smtplib.SMTPException:
                del tokens[token]
                return "We could not send the mail; try again in a minute.", 503
        return "If that address has an account, a reset link is on its way.", 202

    @app.get("/reset/<token>")
    def reset_form(token: str) -> str:
        if token not in tokens:
            abort(404)
        return '<form method="post"><input name="code"><input name="password" type="password"></form>'

    @app.post("/reset/<token>")
    def reset(token: str) -> tuple[str, int]:
        if token not in tokens:
            abort(404)
        email, code = tokens[token]
        if request.form.get("code") != code:
            return "Wrong code.", 400
        del tokens[token]  # single use
        passwords[email] = request.form["password"]
        return "Password changed.", 200

    app.config["PASSWORDS"] = passwords
    return app
