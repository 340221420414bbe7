//! The pages and endpoints, one module per page.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod confirm;
pub mod dbsc;
pub mod errors;
pub mod health;
pub mod home;
pub mod keepalive;
pub mod login;
pub mod logout;
pub mod passkeys;
pub mod password;
pub mod register;

use rocket::{Catcher, Route};

pub fn routes() -> Vec<Route> {
    [
        home::routes(),
        login::routes(),
        register::routes(),
        logout::routes(),
        account::routes(),
        password::routes(),
        confirm::routes(),
        passkeys::routes(),
        admin::routes(),
        api::routes(),
        health::routes(),
        keepalive::routes(),
        dbsc::routes(),
        assets::routes(),
    ]
    .concat()
}

pub fn catchers() -> Vec<Catcher> {
    errors::catchers()
}
