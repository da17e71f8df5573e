//! The admin API client: JSON over HTTP to `<endpoint>/api/v1`, authenticated with a bearer
//! token or the service's Basic password. Bodies are the service's own wire types
//! (`talos_manager_api_types`), so client and service cannot drift.
//!
//! Transport failures, 401 and error answers become [`Error`]s that say what to check.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use talos_manager_api_types::{ErrorBody, JobLogEvent};
use talos_manager_api_types::{Issue, Secret};

use crate::error::Error;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Token(Secret<String>),
    /// HTTP Basic with the service's `BASIC_AUTH_PASSWORD` (the user name is ignored).
    Password(Secret<String>),
}

/// Where the service is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The service's base URL, e.g. `https://talos-manager.example.com`.
    pub endpoint: String,
    /// The credentials.
    pub credentials: Credentials,
    /// The timeout of each request.
    pub timeout: Duration,
}

/// A client of the admin API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    credentials: Credentials,
    /// Turns true when Terraform asks the provider to stop (Ctrl-C).
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The user agent of the provider's requests.
const USER_AGENT: &str = concat!(
    "terraform-provider-talosmanager/",
    env!("CARGO_PKG_VERSION")
);

impl Client {
    /// A client for `config`. Makes no request.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        if !is_http_url(&endpoint) {
            return Err(Error::InvalidEndpoint {
                endpoint: config.endpoint,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|source| Error::Unreachable {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Client {
            http,
            endpoint,
            credentials: config.credentials,
            stop: None,
        })
    }

    /// The client, whose [`Client::stopped`] resolves once `stop` turns true (Terraform's
    /// `StopProvider`).
    pub fn with_stop_signal(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Client {
        self.stop = Some(stop);
        self
    }

    /// Resolves when Terraform asked the provider to stop; never without a stop signal. Long
    /// waits (a bootstrap) end on it and return what they have.
    pub async fn stopped(&self) {
        if let Some(stop) = &self.stop {
            let mut stop = stop.clone();
            if stop.wait_for(|stopped| *stopped).await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }

    /// `GET path`; `None` when the service answers 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Error> {
        match self.call(Method::GET, path, None).await? {
            None => Ok(None),
            Some(json) => parse(Method::GET, path, json).map(Some),
        }
    }

    /// `GET path` of something that must exist.
    pub async fn get_existing<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let json = self.call_existing(Method::GET, path, None).await?;
        parse(Method::GET, path, json)
    }

    /// `GET path` of a text document (YAML) that must exist.
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        match self.send(Method::GET, path, None, false).await? {
            Some(serde_json::Value::String(text)) => Ok(text),
            _ => Err(Error::Api {
                method: "GET",
                path: path.to_owned(),
                status: 404,
                code: "not_found".into(),
                message: format!("{path} does not exist"),
                issues: Vec::new(),
            }),
        }
    }

    /// `POST path` with `body`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let json = self
            .call_existing(Method::POST, path, json_body(body))
            .await?;
        parse(Method::POST, path, json)
    }

    /// `PUT path` with `body`.
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let json = self
            .call_existing(Method::PUT, path, json_body(body))
            .await?;
        parse(Method::PUT, path, json)
    }

    /// `PATCH path` with `body` (fields it leaves out stay as they are).
    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let json = self
            .call_existing(Method::PATCH, path, json_body(body))
            .await?;
        parse(Method::PATCH, path, json)
    }

    /// `DELETE path`; a 404 counts as deleted.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        self.call(Method::DELETE, path, None).await?;
        Ok(())
    }

    async fn call_existing(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Error> {
        self.call(method.clone(), path, body)
            .await?
            .ok_or_else(|| Error::Api {
                method: method_name(&method),
                path: path.to_owned(),
                status: 404,
                code: "not_found".into(),
                message: format!("{path} does not exist"),
                issues: Vec::new(),
            })
    }

    /// Follows a job's live log (`GET /jobs/{id}/log`, server-sent events) and hands each line
    /// to `on_line`, until the event with the job's final status, the end of the stream, or
    /// `until`. A log is progress to show, not an outcome: the job's status is read apart.
    pub async fn follow_job_log(
        &self,
        job_id: &str,
        until: Instant,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), Error> {
        let unreachable = |source| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        };
        let url = format!("{}/api/v1/jobs/{}/log", self.endpoint, segment(job_id));
        let mut response = self
            .authorized(self.http.get(url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(until.saturating_duration_since(Instant::now()))
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Ok(());
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.windows(2).position(|pair| pair == b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                for data in String::from_utf8_lossy(&event)
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                {
                    let Ok(event) = serde_json::from_str::<JobLogEvent>(data.trim()) else {
                        continue;
                    };
                    if let Some(line) = &event.line {
                        on_line(line);
                    }
                    if event.job_status.is_some() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// `request` with the credentials.
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::Token(token) => request.bearer_auth(token.expose()),
            Credentials::Password(password) => {
                request.basic_auth("terraform", Some(password.expose()))
            }
        }
    }

    /// Sends a request; `Ok(None)` on 404 to a GET or DELETE, `Ok(Some(Null))` on an empty
    /// success.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Error> {
        self.send(method, path, body, true).await
    }

    /// Sends a request; a successful answer is parsed as JSON when `json_body`, else returned
    /// as a JSON string of its text. Error answers are always the service's JSON error body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        json_body: bool,
    ) -> Result<Option<serde_json::Value>, Error> {
        let url = format!("{}/api/v1{path}", self.endpoint);
        let mut request = self.authorized(self.http.request(method.clone(), url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        tracing::debug!(%method, path, "calling talos-manager");
        let response = request.send().await.map_err(|source| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| Error::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                endpoint: self.endpoint.clone(),
            });
        }
        // A missing object is an answer for reads and deletes; for writes it names what the
        // body refers to, and the service's message says which.
        if status == StatusCode::NOT_FOUND && matches!(method, Method::GET | Method::DELETE) {
            return Ok(None);
        }
        if status.is_success() && !json_body {
            return Ok(Some(serde_json::Value::String(text)));
        }
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).map_err(|error| Error::UnexpectedAnswer {
                method: method_name(&method),
                path: path.to_owned(),
                detail: format!("status {status}, body is not JSON ({error})"),
            })?
        };
        if status.is_success() {
            return Ok(Some(json));
        }
        // The service leaves `issues` out when there are none: the type defaults it to empty.
        let body =
            serde_json::from_value::<ErrorBody>(json).map_err(|error| Error::UnexpectedAnswer {
                method: method_name(&method),
                path: path.to_owned(),
                detail: format!("status {status}, {error}"),
            })?;
        Err(Error::Api {
            method: method_name(&method),
            path: path.to_owned(),
            status: status.as_u16(),
            code: body.code,
            message: body.message,
            issues: body
                .issues
                .into_iter()
                .map(|issue| Issue::new(issue.path, issue.message))
                .collect(),
        })
    }
}

fn parse<T: DeserializeOwned>(
    method: Method,
    path: &str,
    json: serde_json::Value,
) -> Result<T, Error> {
    serde_json::from_value(json).map_err(|error| Error::UnexpectedAnswer {
        method: method_name(&method),
        path: path.to_owned(),
        detail: error.to_string(),
    })
}

/// `body` as the JSON the service reads. The wire types are structs of strings, numbers,
/// booleans and lists, which always serialise; `None` (no body) would be the only failure.
fn json_body(body: &impl Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(body).ok()
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "request",
    }
}

/// Whether `text` is an http:// or https:// URL with a host.
pub fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
}

/// `text` as one path segment (ids are plain, but never trust that).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
