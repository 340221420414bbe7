// Passkeys, the browser's side of the ceremonies (src/routes/passkeys.rs): asks the server for
// options, hands them to navigator.credentials, and sends the answer back as JSON text in a
// CSRF-checked form. The challenge and its state never leave the server. Without WebAuthn in
// the browser, nothing here shows: the password form works as before.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return;
  }

  function fromBase64url(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The options as the server sent them, less its nulls (WebAuthn's dictionaries refuse them),
  // with the binary members decoded.
  function withoutNulls(value) {
    if (Array.isArray(value)) {
      return value.map(withoutNulls);
    }
    if (value && typeof value === "object") {
      var copy = {};
      Object.keys(value).forEach(function (key) {
        if (value[key] !== null) {
          copy[key] = withoutNulls(value[key]);
        }
      });
      return copy;
    }
    return value;
  }

  function decodeIds(list) {
    (list || []).forEach(function (item) {
      item.id = fromBase64url(item.id);
    });
  }

  function creationOptions(options) {
    var publicKey = withoutNulls(options.publicKey);
    publicKey.challenge = fromBase64url(publicKey.challenge);
    publicKey.user.id = fromBase64url(publicKey.user.id);
    decodeIds(publicKey.excludeCredentials);
    return { publicKey: publicKey };
  }

  function requestOptions(options, signal, conditional) {
    var publicKey = withoutNulls(options.publicKey);
    publicKey.challenge = fromBase64url(publicKey.challenge);
    decodeIds(publicKey.allowCredentials);
    var request = { publicKey: publicKey, signal: signal };
    if (conditional) {
      request.mediation = "conditional";
    }
    return request;
  }

  function answer(credential) {
    var response = credential.response;
    var encoded = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      extensions: {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      encoded.response.attestationObject = toBase64url(response.attestationObject);
      if (response.getTransports) {
        encoded.response.transports = response.getTransports();
      }
    } else {
      encoded.response.authenticatorData = toBase64url(response.authenticatorData);
      encoded.response.signature = toBase64url(response.signature);
      if (response.userHandle) {
        encoded.response.userHandle = toBase64url(response.userHandle);
      }
    }
    return JSON.stringify(encoded);
  }

  function post(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString()
    }).then(function (reply) {
      return reply.json().catch(function () {
        return { error: "The server could not handle this request (" + reply.status + ")." };
      }).then(function (body) {
        if (!reply.ok && !body.error) {
          body.error = "The request was refused (" + reply.status + ").";
        }
        return body;
      });
    });
  }

  function showError(element, message) {
    element.textContent = message;
    element.hidden = false;
  }

  function cancelled(error) {
    return error && (error.name === "NotAllowedError" || error.name === "AbortError");
  }

  // The account page: "Add a passkey".
  function setUpAdding(form) {
    var error = form.querySelector("[data-passkey-error]");
    var name = form.querySelector("input[name=name]");
    var csrf = form.querySelector("input[name=csrf_token]").value;
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      name.removeAttribute("aria-invalid");
      if (!name.value.trim()) {
        name.setAttribute("aria-invalid", "true");
        showError(error, "Give the passkey a name, such as the device it is on.");
        name.focus();
        return;
      }
      post("/account/passkeys/options", { csrf_token: csrf }).then(function (started) {
        if (started.error) {
          throw new Error(started.error);
        }
        return navigator.credentials.create(creationOptions(started.options)).then(function (credential) {
          return post("/account/passkeys", {
            csrf_token: csrf,
            ceremony: started.ceremony,
            name: name.value,
            credential: answer(credential)
          });
        });
      }).then(function (added) {
        if (added.error) {
          throw new Error(added.error);
        }
        window.location.assign("/account");
      }).catch(function (failure) {
        showError(error, cancelled(failure)
          ? "No passkey was added: the request was cancelled or timed out."
          : failure.message);
      });
    });
  }

  // The sign-in page: the button, and the username field's autofill (conditional mediation).
  function setUpSignIn(block) {
    var form = document.querySelector("[data-testid=login-form]");
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var next = form.querySelector("input[name=next]");
    var error = block.querySelector("[data-passkey-error]");
    var conditional = null;
    block.hidden = false;

    // Starts one sign-in; its controller aborts it (the autofill one gives way to the button's).
    function signIn(isConditional) {
      var controller = new AbortController();
      post("/login/passkey/options", { csrf_token: csrf }).then(function (started) {
        if (started.error) {
          throw new Error(started.error);
        }
        return navigator.credentials.get(requestOptions(started.options, controller.signal, isConditional))
          .then(function (credential) {
            var fields = { csrf_token: csrf, ceremony: started.ceremony, credential: answer(credential) };
            if (next) {
              fields.next = next.value;
            }
            return post("/login/passkey", fields);
          });
      }).then(function (signedIn) {
        if (signedIn.error) {
          throw new Error(signedIn.error);
        }
        window.location.assign(signedIn.redirect);
      }).catch(function (failure) {
        if (!cancelled(failure)) {
          showError(error, failure.message);
        } else if (!isConditional) {
          showError(error, "No passkey was used: the request was cancelled or timed out.");
        }
      });
      return controller;
    }

    function startConditional() {
      if (!PublicKeyCredential.isConditionalMediationAvailable) {
        return;
      }
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (available) {
          conditional = signIn(true);
        }
      });
    }

    block.querySelector("[data-testid=passkey-sign-in]").addEventListener("click", function () {
      error.hidden = true;
      // One WebAuthn request at a time: the autofill one gives way to the button's.
      if (conditional) {
        conditional.abort();
        conditional = null;
      }
      signIn(false);
    });
    startConditional();
  }

  // The confirmation page: "Confirm with a passkey", which resumes what waited, as the
  // password does.
  function setUpConfirm(block) {
    var error = block.querySelector("[data-passkey-error]");
    var csrf = block.getAttribute("data-csrf");
    var unsupported = document.querySelector("[data-passkey-unsupported]");
    if (unsupported) {
      unsupported.hidden = true;
    }
    block.hidden = false;
    block.querySelector("[data-testid=confirm-with-passkey]").addEventListener("click", function () {
      error.hidden = true;
      post("/confirm/passkey/options", { csrf_token: csrf }).then(function (started) {
        if (started.error) {
          throw new Error(started.error);
        }
        return navigator.credentials.get(requestOptions(started.options, undefined, false))
          .then(function (credential) {
            var fields = {
              csrf_token: csrf,
              ceremony: started.ceremony,
              credential: answer(credential),
              next: block.getAttribute("data-next")
            };
            if (block.hasAttribute("data-action")) {
              fields.action = block.getAttribute("data-action");
            }
            return post("/confirm/passkey", fields);
          });
      }).then(function (confirmed) {
        if (confirmed.error) {
          throw new Error(confirmed.error);
        }
        window.location.assign(confirmed.redirect);
      }).catch(function (failure) {
        showError(error, cancelled(failure)
          ? "Not confirmed: the passkey request was cancelled or timed out."
          : failure.message);
      });
    });
  }

  function start() {
    var adding = document.querySelector("[data-passkey-add]");
    if (adding) {
      setUpAdding(adding);
    }
    var signIn = document.querySelector("[data-passkey-sign-in]");
    if (signIn) {
      setUpSignIn(signIn);
    }
    var confirming = document.querySelector("[data-passkey-confirm]");
    if (confirming) {
      setUpConfirm(confirming);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
