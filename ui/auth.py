"""Optional sign-in with st.login (OpenID Connect), off by default.

It is on when `.streamlit/secrets.toml` has an `[auth]` section (see README); then every page
needs a signed-in user.
"""
from __future__ import annotations

import streamlit as st


def auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:          # no secrets file at all: sign-in is off
        return False


def require_sign_in(first: bool = True) -> None:
    """Stop the run with a sign-in screen unless sign-in is off or the user is signed in.

    app.py calls it first (`first=True`: the title, and the signed-in user in the sidebar);
    ui.engine.get_engine calls it again, so a page script run on its own is guarded too.
    """
    if not auth_configured():
        return
    if st.user.is_logged_in:
        if not first:
            return
        with st.sidebar:
            st.caption(f"Signed in as **{st.user.get('name') or st.user.get('email') or 'you'}**")
            st.button("Sign out", icon=":material/logout:", on_click=st.logout, width="stretch")
        return
    if first:
        st.title("Rivulet")
    st.info("This dashboard needs you to sign in.", icon=":material/lock:")
    providers = [k for k, v in st.secrets["auth"].items() if isinstance(v, dict)]
    if providers:
        for p in providers:
            st.button(f"Sign in with {p.title()}", icon=":material/login:", on_click=st.login, args=(p,))
    else:
        st.button("Sign in", icon=":material/login:", type="primary", on_click=st.login)
    st.stop()
