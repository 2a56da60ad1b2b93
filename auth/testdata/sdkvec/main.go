// Command sdkvec produces test vectors for livehooks/auth: it drives the
// official Huawei Cloud Go SDK (v0.1.207) with a fixed AK/SK and X-Sdk-Date
// against a local server and prints each request exactly as received.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"

	"reflect"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	live "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1/model"
)

func main() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, err := httputil.DumpRequest(r, true)
		if err != nil {
			panic(err)
		}
		fmt.Printf("----- %s %s\n%s\n-----\n", r.Method, r.RequestURI, strconv.Quote(string(dump)))
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	cred := basic.NewCredentialsBuilder().WithAk("HPUAEXAMPLEAK0000001").WithSk("exampleSecretKeyForLivehooksTestVectors01").WithProjectId("0123456789abcdef0123456789abcdef").Build()
	c := live.NewLiveClient(live.LiveClientBuilder().WithEndpoints([]string{srv.URL}).WithCredential(cred).Build())
	c.HcClient.WithExtraHeaders(map[string]string{"X-Sdk-Date": "20250102T030405Z"})

	domain, app := "play.example.com", "live app/ü+&="
	off, lim := int32(0), int32(10)
	_, err := c.ListRecordCallbackConfigs(&model.ListRecordCallbackConfigsRequest{PublishDomain: &domain, App: &app, Offset: &off, Limit: &lim})
	fmt.Println("list err:", err)

	url := "http://127.0.0.1:9000/cb"
	key := "abcdefghij0123456789ABCDEFGHIJ0123"
	sub := []model.RecordCallbackConfigRequestNotifyEventSubscription{model.GetRecordCallbackConfigRequestNotifyEventSubscriptionEnum().RECORD_OVER, model.GetRecordCallbackConfigRequestNotifyEventSubscriptionEnum().RECORD_FILE_COMPLETE}
	_, err = c.CreateRecordCallbackConfig(&model.CreateRecordCallbackConfigRequest{Body: &model.RecordCallbackConfigRequest{PublishDomain: "publish.example.com", App: "live", NotifyCallbackUrl: &url, NotifyEventSubscription: &sub, Key: &key}})
	fmt.Println("create err:", err)

	_, err = c.UpdateRecordCallbackConfig(&model.UpdateRecordCallbackConfigRequest{Id: "a b+c%d/é", Body: &model.RecordCallbackConfigRequest{PublishDomain: "publish.example.com", App: "live"}})
	fmt.Println("update err:", err)

	_, err = c.DeleteRecordCallbackConfig(&model.DeleteRecordCallbackConfigRequest{Id: "0123456789abcdef0123456789abcdef"})
	fmt.Println("delete err:", err)

	// A raw request signed by core/auth/signer: non-JSON body (UNSIGNED-PAYLOAD),
	// a multi-valued query parameter, an empty value and an extra header.
	req := request.NewHttpRequestBuilder().WithEndpoint(srv.URL).WithMethod("POST").
		WithPath("/v1/{project_id}/record/events/{x}").
		AddPathParam("project_id", "projA").AddPathParam("x", "a~b!c'd(e)*").
		AddQueryParam("b", reflect.ValueOf([]string{"z y", "x"})).
		AddQueryParam("a", reflect.ValueOf("")).
		AddQueryParam("c.d", reflect.ValueOf(42)).
		AddHeaderParam("Content-Type", "text/plain").
		AddHeaderParam("X-Custom", "  spaced value ").
		AddHeaderParam("X-Sdk-Date", "20250102T030405Z").
		WithBody("", "raw body, not hashed").Build()
	hdrs, err := signer.Sign(req, "HPUAEXAMPLEAK0000001", "exampleSecretKeyForLivehooksTestVectors01")
	if err != nil {
		panic(err)
	}
	for k, v := range hdrs {
		req.AddHeaderParam(k, v)
	}
	hr, err := req.ConvertRequest()
	if err != nil {
		panic(err)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
}
