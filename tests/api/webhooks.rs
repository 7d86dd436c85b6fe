//! `POST /api/webhooks/stripe`: signature checks, idempotency, ordering and durability, with
//! payloads from the official `stripe` SDK re-signed at the live clock.

use serde_json::{json, Value};

use crate::support::*;

const RECORD: &str = "/rest/v1/rpc/record_webhook_event";
const APPLY: &str = "/rest/v1/rpc/apply_subscription_event";
const LINK: &str = "/rest/v1/rpc/link_stripe_customer";
const PAYMENTS: &str = "/rest/v1/payments";
const EVENTS: &str = "/rest/v1/webhook_events";

fn payload(name: &str) -> String {
    stripe_event(name)["payload"].as_str().unwrap().to_owned()
}

fn body_json(req: &wiremock::Request) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

/// Every webhook call uses the secret key as both `apikey` and bearer.
fn assert_service_key(req: &wiremock::Request) {
    assert_eq!(
        req.headers.get("apikey").unwrap(),
        SERVICE_KEY,
        "{}",
        req.url
    );
    assert_eq!(
        req.headers.get("authorization").unwrap(),
        &format!("Bearer {SERVICE_KEY}"),
        "{}",
        req.url
    );
}

async fn assert_invalid_signature(res: reqwest::Response) {
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "invalid_signature");
    // No hint about which check failed.
    assert_eq!(body["error"], "Invalid Stripe-Signature");
    assert!(body.get("details").is_none());
}

// ---- the test signer ----

#[test]
fn signer_reproduces_every_sdk_header() {
    let fx = stripe_fixture();
    for event in fx["events"].as_array().unwrap() {
        let signed = stripe_header(
            event["payload"].as_str().unwrap().as_bytes(),
            event["secret"].as_str().unwrap(),
            event["timestamp"].as_i64().unwrap(),
        );
        assert_eq!(
            signed,
            event["header"].as_str().unwrap(),
            "{}",
            event["name"]
        );
    }
}

// ---- signatures ----

#[tokio::test]
async fn a_valid_signature_is_accepted_and_the_subscription_is_applied_with_the_secret_key() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    let res = app
        .deliver_signed(&payload("subscription_updated_active"))
        .await;
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true}));

    let calls = app.upstream_requests().await;
    let paths: Vec<_> = calls
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_owned()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET".to_owned(), EVENTS.to_owned()),
            ("POST".to_owned(), APPLY.to_owned()),
            ("POST".to_owned(), RECORD.to_owned()),
        ],
        "dedupe read, effect, then the event id last"
    );
    calls.iter().for_each(assert_service_key);
    assert_eq!(
        calls[0].url.query(),
        Some("select=id&id=eq.evt_1Sb4gTSupaGateEv000002")
    );
    assert_eq!(
        body_json(&calls[1]),
        json!({
            "p_subscription_id": "sub_1Sb4gTSupaGateSub00001",
            "p_stripe_customer_id": "cus_Sb4gTeSupaGate1",
            "p_status": "active",
            "p_price_id": "price_1Sb4gTSupaGatePrice01",
            "p_current_period_end": "2026-02-01T00:00:00Z",
            "p_cancel_at_period_end": false,
            "p_event_created": 1767225602
        })
    );
    assert_eq!(
        body_json(&calls[2]),
        json!({"p_event_id": "evt_1Sb4gTSupaGateEv000002", "p_event_type": "customer.subscription.updated"})
    );
    assert_eq!(fake.events(), ["evt_1Sb4gTSupaGateEv000002"]);
}

#[tokio::test]
async fn checkout_completed_links_the_reference_user_to_the_customer() {
    let app = TestApp::spawn().await;
    FakeBilling::mount(&app).await;
    let res = app
        .deliver_signed(&payload("checkout_session_completed"))
        .await;
    assert_eq!(res.status(), 200);
    let link = app.requests_to("POST", LINK).await;
    assert_eq!(link.len(), 1);
    assert_service_key(&link[0]);
    let fx = stripe_fixture();
    assert_eq!(
        body_json(&link[0]),
        json!({"p_user_id": fx["user_id"], "p_stripe_customer_id": fx["customer_id"]})
    );
}

#[tokio::test]
async fn payment_intent_succeeded_inserts_the_payment_ignoring_duplicates() {
    let app = TestApp::spawn().await;
    FakeBilling::mount(&app).await;
    let res = app
        .deliver_signed(&payload("payment_intent_succeeded"))
        .await;
    assert_eq!(res.status(), 200);
    let insert = app.requests_to("POST", PAYMENTS).await;
    assert_eq!(insert.len(), 1);
    assert_service_key(&insert[0]);
    assert_eq!(insert[0].url.query(), Some("on_conflict=id"));
    assert_eq!(
        insert[0].headers.get("prefer").unwrap(),
        "resolution=ignore-duplicates,return=minimal"
    );
    assert_eq!(
        body_json(&insert[0]),
        json!({
            "id": "pi_3Sb4gTSupaGatePI000001", "stripe_customer_id": "cus_Sb4gTeSupaGate1",
            "amount": 1250, "currency": "eur", "status": "succeeded"
        })
    );
}

#[tokio::test]
async fn an_unhandled_event_type_is_recorded_and_acknowledged() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    let (status, body) =
        json_of(app.deliver_signed(&payload("invoice_paid_unhandled")).await).await;
    assert_eq!((status, body), (200, json!({"received": true})));
    assert_eq!(fake.events(), ["evt_1Sb4gTSupaGateEv000006"]);
    assert_eq!(app.upstream_requests().await.len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let header = stripe_header(p.as_bytes(), "whsec_someone_else", unix_now());
    assert_invalid_signature(app.deliver(&p, Some(&header)).await).await;
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_sdk_header_with_its_2026_timestamp_is_stale_now() {
    let app = TestApp::spawn_with(|s| {
        s.stripe.webhook_secrets = vec![supagate::config::Secret::new(
            stripe_fixture()["secrets"]["primary"].as_str().unwrap(),
        )];
    })
    .await;
    let event = stripe_event("payment_intent_succeeded");
    let res = app
        .deliver(event["payload"].as_str().unwrap(), event["header"].as_str())
        .await;
    assert_invalid_signature(res).await;
}

#[tokio::test]
async fn a_stale_timestamp_is_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let header = stripe_header(p.as_bytes(), STRIPE_SECRET, unix_now() - 301 - 5);
    assert_invalid_signature(app.deliver(&p, Some(&header)).await).await;
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_timestamp_in_the_future_beyond_the_tolerance_is_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let header = stripe_header(p.as_bytes(), STRIPE_SECRET, unix_now() + 301 + 5);
    assert_invalid_signature(app.deliver(&p, Some(&header)).await).await;
}

#[tokio::test]
async fn a_missing_header_is_refused() {
    let app = TestApp::spawn().await;
    assert_invalid_signature(
        app.deliver(&payload("payment_intent_succeeded"), None)
            .await,
    )
    .await;
}

#[tokio::test]
async fn malformed_headers_are_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let good = stripe_header(p.as_bytes(), STRIPE_SECRET, unix_now());
    let sig = good.split("v1=").nth(1).unwrap().to_owned();
    for header in [
        "garbage".to_owned(),
        format!("v1={sig}"),
        format!("t=abc,v1={sig}"),
        format!("t={},v1={}", unix_now(), sig.to_uppercase()),
        good.replace(',', ";"),
    ] {
        assert_invalid_signature(app.deliver(&p, Some(&header)).await).await;
    }
}

#[tokio::test]
async fn a_body_changed_by_one_byte_is_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let header = stripe_header(p.as_bytes(), STRIPE_SECRET, unix_now());
    let tampered = p.replacen("\"amount\": 1250", "\"amount\": 1251", 1);
    assert_eq!(tampered.len(), p.len());
    assert_ne!(tampered, p);
    assert_invalid_signature(app.deliver(&tampered, Some(&header)).await).await;
}

#[tokio::test]
async fn a_v0_only_header_is_refused() {
    let app = TestApp::spawn().await;
    let p = payload("payment_intent_succeeded");
    let header = stripe_header(p.as_bytes(), STRIPE_SECRET, unix_now()).replace("v1=", "v0=");
    assert_invalid_signature(app.deliver(&p, Some(&header)).await).await;
}

#[tokio::test]
async fn both_secrets_are_accepted_during_a_rotation() {
    let fx = stripe_fixture();
    let primary = fx["secrets"]["primary"].as_str().unwrap().to_owned();
    let rotated = fx["secrets"]["rotated"].as_str().unwrap().to_owned();
    let app = TestApp::spawn_with(|s| {
        s.stripe.webhook_secrets = vec![
            supagate::config::Secret::new(primary.clone()),
            supagate::config::Secret::new(rotated.clone()),
        ];
    })
    .await;
    FakeBilling::mount(&app).await;
    for (secret, name) in [
        (&primary, "payment_intent_succeeded"),
        (&rotated, "invoice_paid_unhandled"),
    ] {
        let p = payload(name);
        let header = stripe_header(p.as_bytes(), secret, unix_now());
        assert_eq!(app.deliver(&p, Some(&header)).await.status(), 200, "{name}");
    }
    // A header carrying both signatures, rotated first, as Stripe sends during a roll.
    let p = with_event_id(&payload("payment_intent_succeeded"), "evt_dual");
    let t = unix_now();
    let rot = stripe_header(p.as_bytes(), &rotated, t);
    let pri = stripe_header(p.as_bytes(), &primary, t);
    let header = format!("{rot},v1={},v0=ignored", pri.split("v1=").nth(1).unwrap());
    assert_eq!(app.deliver(&p, Some(&header)).await.status(), 200);
}

#[tokio::test]
async fn a_thin_v2_event_is_refused_after_verification() {
    let app = TestApp::spawn().await;
    FakeBilling::mount(&app).await;
    let p = r#"{"id":"evt_test_65R","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2026-01-01T00:00:00.000Z"}"#;
    let (status, body) = json_of(app.deliver_signed(p).await).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "invalid_event");
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(256 * 1024));
    let (status, body) = json_of(app.deliver_signed(&big).await).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "payload_too_large");
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn only_post_is_allowed() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/webhooks/stripe").send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
}

// ---- idempotency, ordering, durability ----

#[tokio::test]
async fn a_redelivery_is_a_duplicate_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    let p = payload("subscription_created");
    let (status, first) = json_of(app.deliver_signed(&p).await).await;
    assert_eq!((status, first), (200, json!({"received": true})));
    let (status, second) = json_of(app.deliver_signed(&p).await).await;
    assert_eq!(
        (status, second),
        (200, json!({"received": true, "duplicate": true}))
    );

    assert_eq!(app.requests_to("POST", APPLY).await.len(), 1);
    assert_eq!(app.requests_to("POST", RECORD).await.len(), 1);
    assert_eq!(app.requests_to("GET", EVENTS).await.len(), 2);
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test]
async fn out_of_order_subscription_events_leave_the_newest_state() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    // Stripe created them 601, 602, 603, 604; they arrive 603, 601, 604, 602.
    for name in [
        "subscription_updated_cancel_at_period_end",
        "subscription_created",
        "subscription_deleted",
        "subscription_updated_active",
    ] {
        let res = app.deliver_signed(&payload(name)).await;
        assert_eq!(
            res.status(),
            200,
            "{name}: a stale event is still acknowledged"
        );
    }
    // Every event was sent with its own `created`, so the database can order them.
    let sent: Vec<i64> = app
        .requests_to("POST", APPLY)
        .await
        .iter()
        .map(|r| body_json(r)["p_event_created"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, [1767225603, 1767225601, 1767225604, 1767225602]);
    let stored = fake.subscription("sub_1Sb4gTSupaGateSub00001").unwrap();
    assert_eq!(stored["p_status"], "canceled");
    assert_eq!(stored["p_event_created"], 1767225604);
    assert_eq!(
        fake.events().len(),
        4,
        "stale events are still recorded as received"
    );
}

#[tokio::test]
async fn a_failed_effect_write_is_5xx_and_the_redelivery_applies_it_once() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    fake.fail_next(APPLY, 1);
    let p = payload("subscription_updated_active");

    let (status, body) = json_of(app.deliver_signed(&p).await).await;
    assert!(status >= 500, "{status} {body}");
    assert_eq!(
        error_code(&body),
        "upstream_unavailable",
        "PGRST001 is a database outage"
    );
    assert!(
        fake.events().is_empty(),
        "not recorded, so Stripe's retry is not a duplicate"
    );
    assert_eq!(app.requests_to("POST", RECORD).await.len(), 0);

    let (status, body) = json_of(app.deliver_signed(&p).await).await;
    assert_eq!((status, body), (200, json!({"received": true})));
    assert_eq!(
        fake.subscription("sub_1Sb4gTSupaGateSub00001").unwrap()["p_status"],
        "active"
    );

    let (status, body) = json_of(app.deliver_signed(&p).await).await;
    assert_eq!(
        (status, body),
        (200, json!({"received": true, "duplicate": true}))
    );
    // One failed attempt and exactly one applied; the third delivery wrote nothing.
    assert_eq!(app.requests_to("POST", APPLY).await.len(), 2);
    assert_eq!(app.requests_to("POST", RECORD).await.len(), 1);
}

#[tokio::test]
async fn a_failed_event_record_is_5xx_and_the_redelivery_repeats_the_idempotent_effect() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    fake.fail_next(RECORD, 1);
    let p = payload("payment_intent_succeeded");

    let (status, _) = json_of(app.deliver_signed(&p).await).await;
    assert!(status >= 500);
    let (status, body) = json_of(app.deliver_signed(&p).await).await;
    assert_eq!((status, body), (200, json!({"received": true})));

    let inserts = app.requests_to("POST", PAYMENTS).await;
    assert_eq!(inserts.len(), 2, "the effect is repeated...");
    assert_eq!(body_json(&inserts[0]), body_json(&inserts[1]));
    assert_eq!(
        fake.state.lock().unwrap().payments.len(),
        1,
        "...and stored once"
    );
    assert_eq!(fake.events(), ["evt_1Sb4gTSupaGateEv000005"]);
}

#[tokio::test]
async fn an_unreachable_database_on_the_dedupe_read_is_5xx_with_no_write() {
    let app = TestApp::spawn().await;
    let fake = FakeBilling::mount(&app).await;
    fake.fail_next(EVENTS, 1);
    let (status, _) = json_of(
        app.deliver_signed(&payload("checkout_session_completed"))
            .await,
    )
    .await;
    assert!(status >= 500);
    assert!(app.requests_to("POST", LINK).await.is_empty());
    assert!(app.requests_to("POST", RECORD).await.is_empty());
}
