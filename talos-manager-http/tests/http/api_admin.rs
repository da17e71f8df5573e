//! The small resources of the admin API: label and taint rules, settings, tokens, and the
//! error shape they share.

use reqwest::Method;
use serde_json::json;

use super::server::{PASSWORD, api_test};

api_test!(label_taint_rules_crud_and_validation, |server| {
    let created = server
        .expect(
            Method::POST,
            "/api/v1/label-taint-rules",
            Some(json!({"match": "database", "labels": "role=database", "taints": "role=database:NoSchedule"})),
            201,
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["match"], "database");

    let list = server
        .expect(Method::GET, "/api/v1/label-taint-rules", None, 200)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let path = format!("/api/v1/label-taint-rules/{id}");
    let invalid = server
        .expect(
            Method::PUT,
            &path,
            Some(json!({"match": "database", "labels": "role", "taints": "a=b:Sometimes"})),
            422,
        )
        .await;
    assert_eq!(invalid["code"], "invalid");
    assert_eq!(
        invalid["issues"],
        json!([
            {"path": "labels", "message": "\"role\" must include an equals sign to separate key and value"},
            {"path": "taints", "message": "\"a=b:Sometimes\" effect must be one of: NoSchedule, PreferNoSchedule, NoExecute"},
        ])
    );
    let updated = server
        .expect(
            Method::PUT,
            &path,
            Some(json!({"match": "db", "labels": "tier=stateful"})),
            200,
        )
        .await;
    assert_eq!(updated["taints"], "");
    assert_eq!(
        server.expect(Method::GET, &path, None, 200).await["match"],
        "db"
    );

    server.expect(Method::DELETE, &path, None, 204).await;
    let missing = server.expect(Method::GET, &path, None, 404).await;
    assert_eq!(missing["code"], "not_found");
    server
        .expect(
            Method::GET,
            "/api/v1/label-taint-rules/not-a-number",
            None,
            404,
        )
        .await;
});

api_test!(malformed_bodies_get_the_json_error_shape, |server| {
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/label-taint-rules",
            Some(json!({"labels": 5})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
    assert!(
        body["message"].as_str().unwrap().contains("RuleFields"),
        "{body}"
    );
    let (status, body) = server
        .call(Method::GET, "/api/v1/no-such-thing", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
});

api_test!(settings_default_then_saved, |server| {
    let settings = server
        .expect(Method::GET, "/api/v1/settings", None, 200)
        .await;
    assert_eq!(
        settings["talos_version"],
        talos_manager_core::store::DEFAULT_TALOS_VERSION
    );
    assert!(settings.get("updated_at").is_none_or(|v| v.is_null()));

    let invalid = server
        .expect(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"talos_version": "1.11"})),
            422,
        )
        .await;
    assert_eq!(invalid["issues"][0]["path"], "talos_version");
    server
        .expect(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"talos_version": "v1.11.5", "default_schematic_id": "77"})),
            404,
        )
        .await;
    let saved = server
        .expect(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"talos_version": "v1.11.5"})),
            200,
        )
        .await;
    assert_eq!(saved["talos_version"], "v1.11.5");
    assert_eq!(
        server
            .expect(Method::GET, "/api/v1/settings", None, 200)
            .await,
        saved
    );
});

api_test!(tokens_are_shown_once_work_and_can_be_revoked, |server| {
    let created = server
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "terraform"})),
            201,
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tm_"));
    let list = server
        .expect(Method::GET, "/api/v1/tokens", None, 200)
        .await;
    assert!(
        !list.to_string().contains(&secret),
        "a listing shows a token value"
    );
    assert_eq!(list.as_array().unwrap().len(), 2);

    let with_new_token = |token: String| {
        let client = server.client.clone();
        let url = server.url("/api/v1/settings");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with_new_token(secret.clone()).await, 200);
    let duplicate = server
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "terraform"})),
            409,
        )
        .await;
    assert_eq!(duplicate["code"], "conflict");

    let id = created["id"].as_str().unwrap();
    server
        .expect(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, 204)
        .await;
    assert_eq!(with_new_token(secret).await, 401);
});

api_test!(basic_auth_takes_any_user_with_the_password, |server| {
    let status = |user: &'static str, password: &'static str| {
        let request = server
            .client
            .get(server.url("/api/v1/settings"))
            .basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status("admin", PASSWORD).await, 200);
    assert_eq!(status("anyone", PASSWORD).await, 200);
    assert_eq!(status("admin", "wrong").await, 401);
    let response = server
        .client
        .get(server.url("/api/v1/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "no browser password prompt for a request that sent no password"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    let wrong = server
        .client
        .get(server.url("/api/v1/settings"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        "Basic realm=\"talos-manager\""
    );
});
